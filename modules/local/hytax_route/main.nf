process HYTAX_ROUTE {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(units), path(claims, stageAs: 'tier?/*')  // prepared reads; every tier's claims table, in tier order

    output:
    tuple val(meta), path("${prefix}.kept.tsv")       , emit: kept
    tuple val(meta), path("${prefix}.routed.fasta.gz"), emit: routed
    path 'versions.yml'                                , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    def tiers  = (claims instanceof List ? claims : [claims]).collect { "--claims ${it}" }.join(' ')
    // ext.args: --route and --route-rank
    """
    hytax route \\
        --units ${units} \\
        ${tiers} \\
        --kept ${prefix}.kept.tsv \\
        --routed ${prefix}.routed.fasta.gz \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.kept.tsv
    echo -n | gzip > ${prefix}.routed.fasta.gz

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
