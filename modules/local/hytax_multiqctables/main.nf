process HYTAX_MULTIQCTABLES {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(summaries, stageAs: 'summaries/*')  // every sample's <id>.summary.json

    output:
    tuple val(meta), path('*_mqc.tsv'), emit: tables
    path 'versions.yml'                , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    hytax multiqc-tables ${summaries} --outdir . ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    """
    touch hytax_sources_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
