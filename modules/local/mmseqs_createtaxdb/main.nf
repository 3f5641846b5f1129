process MMSEQS_CREATETAXDB {
    tag "$db_meta.id"
    label 'process_low'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(db_meta), path(seqdb, stageAs: 'seqdb'), path(tax_mapping)  // db_meta.prefix: the database name in seqdb/; sequence id -> taxid
    path taxdump, stageAs: 'taxdump'                                      // folder: nodes.dmp, names.dmp[, merged.dmp]

    output:
    tuple val(db_meta), path('taxdb', type: 'dir'), emit: db
    path 'versions.yml'                           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def db   = "taxdb/${db_meta.prefix}"
    // createtaxdb adds files next to the database: work on a copy, never on the staged input.
    // It keeps the taxonomy only as a binary; the .dmp copies make the database usable as a
    // taxdump by hytax (Taxonomy.load accepts a database prefix) and by --mmseqs_db alone.
    """
    cp -rL seqdb taxdb
    # createtaxdb needs merged.dmp (an empty one is fine); delnodes.dmp is not read
    mkdir dump
    for name in nodes names merged; do
        if [ -e taxdump/\$name.dmp ]; then
            ln -s "\$(readlink -f taxdump/\$name.dmp)" dump/\$name.dmp
        else
            touch dump/\$name.dmp
        fi
    done
    mmseqs createtaxdb ${db} tmp \\
        --ncbi-tax-dump dump \\
        --tax-mapping-file ${tax_mapping} \\
        --threads ${task.cpus} \\
        ${args}
    for name in nodes names merged; do
        cp -L dump/\$name.dmp ${db}_\$name.dmp
    done
    rm -rf tmp dump

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """

    stub:
    def db = "taxdb/${db_meta.prefix}"
    """
    cp -rL seqdb taxdb
    touch ${db}_mapping ${db}_taxonomy ${db}_nodes.dmp ${db}_names.dmp ${db}_merged.dmp

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """
}
