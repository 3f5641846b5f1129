process HYTAX_MERGE {
    tag "$meta.id"
    label 'process_single'
    container "${params.container}"

    input:
    tuple val(meta), path(units), path(claims), path(bertax)  // prepared reads, MMseqs2 claims, BERTax predictions
    tuple val(tax_meta), path(taxdump, stageAs: 'taxonomy')   // taxdump folder, or seqTaxDB folder + tax_meta.prefix
    val min_confidence                                        // BERTax probability needed to fill a rank

    output:
    tuple val(meta), path("${prefix}.hytax.tsv"), emit: merged
    path 'versions.yml'                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args     = task.ext.args ?: ''
    prefix       = task.ext.prefix ?: "${meta.id}"
    def taxonomy = tax_meta.prefix ? "taxonomy/${tax_meta.prefix}" : 'taxonomy'
    """
    hytax merge \\
        --units ${units} \\
        --claims ${claims} \\
        --bertax ${bertax} \\
        --taxdump ${taxonomy} \\
        --min-confidence ${min_confidence} \\
        --output ${prefix}.hytax.tsv \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.hytax.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
