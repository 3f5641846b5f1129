process HYTAX_TAXONOMY {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(taxdump, stageAs: 'taxdump')   // taxdump folder, or seqTaxDB folder + meta.prefix
    path mappings, stageAs: 'taxids/?/*'                  // MMseqs2 <db>_mapping files or seq2taxid TSVs (taxid last)
    path models, stageAs: 'models/?/*'                    // BERTax model folders (config.json classes), or []

    output:
    tuple val(meta), path("${prefix}.hytax.tsv"), emit: taxonomy
    path 'versions.yml'                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args     = task.ext.args ?: ''
    prefix       = task.ext.prefix ?: 'taxonomy'
    def source   = meta.prefix ? "taxdump/${meta.prefix}" : 'taxdump'
    def taxids   = [mappings].flatten().collect { file -> "--taxids ${file}" }.join(' ')
    def model    = [models].flatten().collect { folder -> "--model ${folder}" }.join(' ')
    """
    hytax taxonomy \\
        --taxdump ${source} \\
        ${taxids} \\
        ${model} \\
        --output ${prefix}.hytax.tsv \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: 'taxonomy'
    """
    printf '#hytax-taxonomy\\t1\\ttaxa=1\\tmerged=0\\ntaxid\\tparent\\trank\\tname\\tunique_name\\n1\\t1\\tno rank\\troot\\t\\n#merged\\nold_taxid\\tnew_taxid\\n' > ${prefix}.hytax.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
