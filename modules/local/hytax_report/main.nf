process HYTAX_REPORT {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(merged)                             // merged per-read table
    tuple val(tax_meta), path(taxdump, stageAs: 'taxonomy')   // taxdump folder, or seqTaxDB folder + tax_meta.prefix

    output:
    tuple val(meta), path("${prefix}.kraken2.report.txt"), emit: kraken2
    tuple val(meta), path("${prefix}.profile.tsv")       , emit: profile
    tuple val(meta), path("${prefix}.krona.txt")         , emit: krona
    tuple val(meta), path("${prefix}.summary.json")      , emit: summary
    path 'versions.yml'                                   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args     = task.ext.args ?: ''
    prefix       = task.ext.prefix ?: "${meta.id}"
    def taxonomy = tax_meta.prefix ? "taxonomy/${tax_meta.prefix}" : 'taxonomy'
    """
    hytax report \\
        --merged ${merged} \\
        --taxdump ${taxonomy} \\
        --sample ${prefix} \\
        --outdir . \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.kraken2.report.txt ${prefix}.profile.tsv ${prefix}.krona.txt
    echo '{}' > ${prefix}.summary.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
