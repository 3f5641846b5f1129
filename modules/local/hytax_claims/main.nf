process HYTAX_CLAIMS {
    tag "$meta.id:$meta.db_name"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(units), path(raw)                   // prepared reads, the classifier's tables; meta.classifier, meta.db_name, meta.db_type: the tier
    tuple val(tax_meta), path(taxonomy, stageAs: 'taxonomy')  // taxonomy folder (+ tax_meta.prefix)

    output:
    tuple val(meta), path("${prefix}.claims.tsv"), emit: claims
    path 'versions.yml'                           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args     = task.ext.args ?: ''
    prefix       = task.ext.prefix ?: "${meta.id}.${meta.db_name}"
    def taxdir   = tax_meta.prefix ? "taxonomy/${tax_meta.prefix}" : 'taxonomy'
    // ext.args: the tier's claim minimums (--min-identity, --min-aln-fraction)
    """
    hytax claims \\
        --classifier ${meta.classifier} \\
        --units ${units} \\
        --raw ${raw} \\
        --db-type ${meta.db_type} \\
        --db-name ${meta.db_name} \\
        --taxonomy ${taxdir} \\
        --output ${prefix}.claims.tsv \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.${meta.db_name}"
    """
    touch ${prefix}.claims.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
