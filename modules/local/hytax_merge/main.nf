process HYTAX_MERGE {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(units), path(kept), path(bertax)    // prepared reads, the claims routing kept, BERTax predictions
    tuple val(tax_meta), path(taxonomy, stageAs: 'taxonomy')  // taxonomy folder (+ tax_meta.prefix)

    output:
    tuple val(meta), path("${prefix}.hytax.tsv"), emit: merged
    path 'versions.yml'                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    def taxdir = tax_meta.prefix ? "taxonomy/${tax_meta.prefix}" : 'taxonomy'
    // ext.args: --min-confidence
    """
    hytax merge \\
        --units ${units} \\
        --claims ${kept} \\
        --bertax ${bertax} \\
        --taxonomy ${taxdir} \\
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
