process MMSEQS_CREATEDB {
    tag "$meta.id"
    label 'process_low'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(fasta)

    output:
    // db_meta = meta + [prefix: <name of the database inside seqdb/>]
    tuple val(db_meta), path('seqdb', type: 'dir'), emit: db
    path 'versions.yml'                            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix   = task.ext.prefix ?: "${meta.id}"
    db_meta  = meta + [prefix: prefix]
    // meta.db_type: nucleotide (default) or protein; MMseqs2 codes them 2 and 1
    def dbtype = meta.db_type == 'protein' ? 1 : 2
    """
    mkdir seqdb
    mmseqs createdb ${fasta} seqdb/${prefix} --dbtype ${dbtype} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """

    stub:
    prefix  = task.ext.prefix ?: "${meta.id}"
    db_meta = meta + [prefix: prefix]
    """
    mkdir seqdb
    touch seqdb/${prefix} seqdb/${prefix}.dbtype seqdb/${prefix}.index seqdb/${prefix}.lookup
    touch seqdb/${prefix}_h seqdb/${prefix}_h.dbtype seqdb/${prefix}_h.index

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """
}
