process MMSEQS_TAXONOMY {
    tag "$meta.id"
    label 'process_medium'
    container "${params.container}"

    input:
    tuple val(meta), path(reads)                          // prepared reads, FASTA (gz)
    tuple val(db_meta), path(db, stageAs: 'target_db')    // seqTaxDB folder; db_meta.prefix: its name

    output:
    tuple val(meta), path("${prefix}.lca.tsv"), emit: lca
    tuple val(meta), path("${prefix}.aln.tsv"), emit: aln
    path 'versions.yml'                        , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    def target = "target_db/${db_meta.prefix}"
    def mem    = task.memory ? "--split-memory-limit ${(task.memory.toMega() * 0.8) as long}M" : ''
    // --tax-output-mode 2 writes the LCA database <result> and the alignments it used,
    // <result>_aln. MMseqs2 fails on a query database without sequences: a sample without
    // reads gets empty tables (every read of it is then unclassified, i.e. none).
    """
    first_byte=\$(gzip -cdf ${reads} | head -c 1 | wc -c || true)
    if [ "\$first_byte" -eq 0 ]; then
        echo "${reads}: no reads; writing empty MMseqs2 tables" >&2
        : > ${prefix}.lca.tsv
        : > ${prefix}.aln.tsv
    else
        mkdir -p query result
        mmseqs createdb ${reads} query/${prefix} --dbtype 2
        mmseqs taxonomy query/${prefix} ${target} result/${prefix} tmp \\
            --search-type 3 \\
            --tax-lineage 1 \\
            --tax-output-mode 2 \\
            --threads ${task.cpus} \\
            ${mem} \\
            ${args}
        mmseqs createtsv query/${prefix} result/${prefix} ${prefix}.lca.tsv --threads ${task.cpus}
        mmseqs convertalis query/${prefix} ${target} result/${prefix}_aln ${prefix}.aln.tsv \\
            --format-output query,target,fident,alnlen,evalue,bits,taxid \\
            --search-type 3 \\
            --threads ${task.cpus}
        rm -rf tmp query result
    fi

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.lca.tsv ${prefix}.aln.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """
}
