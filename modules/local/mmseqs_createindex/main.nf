process MMSEQS_CREATEINDEX {
    tag "$db_meta.id"
    label 'process_medium'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(db_meta), path(taxdb, stageAs: 'taxdb')  // db_meta.prefix: the database name in taxdb/

    output:
    tuple val(db_meta), path('mmseqs_db', type: 'dir'), emit: db
    path 'versions.yml'                               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def mem  = task.memory ? "--split-memory-limit ${(task.memory.toMega() * 0.8) as long}M" : ''
    // a protein DB is indexed for the translated search MMseqs2 picks itself
    def search = db_meta.db_type == 'protein' ? '' : '--search-type 3'
    // The index is written next to the database: work on a copy of the staged input.
    // Search parameters (-k, -s) must match those of `mmseqs taxonomy`, or it is ignored.
    """
    cp -rL taxdb mmseqs_db
    mmseqs createindex mmseqs_db/${db_meta.prefix} tmp \\
        ${search} \\
        --threads ${task.cpus} \\
        ${mem} \\
        ${args}
    rm -rf tmp

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """

    stub:
    """
    cp -rL taxdb mmseqs_db
    touch mmseqs_db/${db_meta.prefix}.idx mmseqs_db/${db_meta.prefix}.idx.dbtype mmseqs_db/${db_meta.prefix}.idx.index

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """
}
