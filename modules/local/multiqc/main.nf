process MULTIQC {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"
    // inputs include files collectFile writes anew on every run: hash them by content so
    // that -resume reuses the report when nothing changed
    cache 'deep'

    input:
    tuple val(meta), path(multiqc_files, stageAs: '?/*')  // *_mqc.tsv/yml, kraken2 reports, versions
    path multiqc_config                                   // assets/multiqc_config.yml
    path extra_multiqc_config                             // --multiqc_config, or [] for none

    output:
    path '*multiqc_report.html', emit: report
    path '*_data'              , emit: data
    path '*_plots'             , emit: plots, optional: true
    path 'versions.yml'        , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    def config = multiqc_config ? "--config ${multiqc_config}" : ''
    def extra  = extra_multiqc_config ? "--config ${extra_multiqc_config}" : ''
    // The pipeline's versions file is written before this task starts, so it cannot hold
    // MultiQC's own version: MultiQC reads that from one more *_mqc_versions.yml, written here
    def name   = task.process.tokenize(':')[-1]
    """
    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        multiqc: \$(multiqc --version | sed 's/.*version //')
    END_VERSIONS
    sed 's/^"${task.process}":/${name}:/' versions.yml > multiqc_mqc_versions.yml

    multiqc \\
        --force \\
        ${config} \\
        ${extra} \\
        ${args} \\
        .
    """

    stub:
    """
    mkdir multiqc_data
    touch multiqc_report.html

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        multiqc: \$(multiqc --version | sed 's/.*version //')
    END_VERSIONS
    """
}
