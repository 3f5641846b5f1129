process HYTAX_ROUTE {
    tag "$meta.id"
    label 'process_single'
    container "${params.container}"

    input:
    tuple val(meta), path(units), path(lca), path(aln)         // prepared reads, MMseqs2 LCA and alignment TSVs
    tuple val(tax_meta), path(taxdump, stageAs: 'taxonomy')    // taxdump folder, or seqTaxDB folder + tax_meta.prefix
    val route                                                  // unclassified | below_rank
    val route_rank                                             // superkingdom | phylum | genus
    val min_identity                                           // 'genus=0.95,phylum=0.8' or ''

    output:
    tuple val(meta), path("${prefix}.claims.tsv")     , emit: claims
    tuple val(meta), path("${prefix}.routed.fasta.gz"), emit: routed
    path 'versions.yml'                                , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args       = task.ext.args ?: ''
    prefix         = task.ext.prefix ?: "${meta.id}"
    def taxonomy   = tax_meta.prefix ? "taxonomy/${tax_meta.prefix}" : 'taxonomy'
    def identities = min_identity ? "--min-identity '${min_identity}'" : ''
    """
    hytax route \\
        --units ${units} \\
        --lca ${lca} \\
        --aln ${aln} \\
        --taxdump ${taxonomy} \\
        --route ${route} \\
        --route-rank ${route_rank} \\
        ${identities} \\
        --claims ${prefix}.claims.tsv \\
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
    touch ${prefix}.claims.tsv
    echo -n | gzip > ${prefix}.routed.fasta.gz

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
