process HYTAX_COMBINE {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(merged, stageAs: 'merged/*')        // every sample's <id>.hytax.tsv
    path(claims, stageAs: 'claims/*')                         // every sample's and tier's <id>.<db_name>.claims.tsv, or []
    tuple val(tax_meta), path(taxdump, stageAs: 'taxonomy')   // for the taxon columns (ext.args: --add-name ...)

    output:
    tuple val(meta), path('hytax_merged.tsv'), emit: merged        // taxpasta wide table of the merged result
    tuple val(meta), path('mmseqs2_*.tsv')   , emit: tiers, optional: true  // one per MMseqs2 database tier
    tuple val(meta), path('hytax.krona.txt') , emit: krona         // all samples, the sample as top wedge
    tuple val(meta), path('krona')           , emit: krona_samples // <sample>.txt each
    path 'versions.yml'                      , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args     = task.ext.args ?: ''
    def taxonomy = tax_meta.prefix ? "taxonomy/${tax_meta.prefix}" : 'taxonomy'
    def tiers    = claims ? "--claims ${claims}" : ''
    """
    hytax combine \\
        ${merged} \\
        ${tiers} \\
        --taxdump ${taxonomy} \\
        --outdir . \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    """
    mkdir krona
    touch hytax_merged.tsv hytax.krona.txt

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
