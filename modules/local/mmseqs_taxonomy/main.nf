process MMSEQS_TAXONOMY {
    tag "$meta.id:$db_meta.id"
    label 'process_medium'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(reads)                          // prepared reads, FASTA (gz)
    tuple val(db_meta), path(db, stageAs: 'target_db')    // seqTaxDB folder; db_meta: id, prefix, db_type

    output:
    tuple val(meta), path("${prefix}.lca.tsv"), path("${prefix}.aln.tsv"), emit: tables
    path 'versions.yml'                                                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}.${db_meta.id}"
    def target = "target_db/${db_meta.prefix}"
    def mem    = task.memory ? "--split-memory-limit ${(task.memory.toMega() * 0.8) as long}M" : ''
    // nucleotide reads against a nucleotide DB (--search-type 3), or translated against a
    // protein DB (MMseqs2 picks the translated search itself). --orf-filter 0: MMseqs2 14's ORF
    // prefilter crashes against a precomputed protein index (free(): invalid pointer); without
    // it, on that index, the search was also faster and found more (docs/benchmark.md)
    def protein = db_meta.db_type == 'protein'
    def search  = protein ? '' : '--search-type 3'
    def orfs    = protein ? '--orf-filter 0' : ''
    def aln_columns = 'query,target,fident,alnlen,qstart,qend,qlen,evalue,bits,taxid'
    // MMseqs2 shortens ids it can parse (sp|P12345|r3 -> P12345, so reads can collide): it sees
    // each read as its number in the prepared reads, and `hytax claims` maps the numbers back.
    // Both tables are sorted by that number so that the next step streams them.
    // --tax-output-mode 2 writes the LCA database <result> and the alignments it used,
    // <result>_aln. MMseqs2 fails on a query database without sequences: a sample without
    // reads gets empty tables (every read of it is then unclassified, i.e. none).
    """
    gzip -cdf ${reads} | awk '/^>/ { print ">" ++n; next } { print }' > query.fasta
    if [ ! -s query.fasta ]; then
        echo "${reads}: no reads; writing empty MMseqs2 tables" >&2
        : > ${prefix}.lca.tsv
        : > ${prefix}.aln.tsv
    else
        mkdir -p query result
        mmseqs createdb query.fasta query/${prefix} --dbtype 2
        mmseqs taxonomy query/${prefix} ${target} result/${prefix} tmp \\
            ${search} ${orfs} \\
            --tax-lineage 1 \\
            --tax-output-mode 2 \\
            --threads ${task.cpus} \\
            ${mem} \\
            ${args}
        mmseqs createtsv query/${prefix} result/${prefix} lca.unsorted.tsv --threads ${task.cpus}
        mmseqs convertalis query/${prefix} ${target} result/${prefix}_aln aln.unsorted.tsv \\
            --format-output ${aln_columns} \\
            ${search} \\
            --threads ${task.cpus}
        LC_ALL=C sort -t \$'\\t' -k1,1n -s -T . lca.unsorted.tsv > ${prefix}.lca.tsv
        LC_ALL=C sort -t \$'\\t' -k1,1n -s -T . aln.unsorted.tsv > ${prefix}.aln.tsv
        rm -rf tmp query result query.fasta lca.unsorted.tsv aln.unsorted.tsv
    fi

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.${db_meta.id}"
    """
    touch ${prefix}.lca.tsv ${prefix}.aln.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mmseqs: \$(mmseqs version)
    END_VERSIONS
    """
}
