process HYTAX_PREPARE {
    tag "$meta.id"
    label 'process_single'
    container "${params.container}"

    input:
    tuple val(meta), path(reads)  // [R1] or [R1, R2]: FASTQ or FASTA, plain or gzip

    output:
    tuple val(meta), path("${prefix}.reads.fasta.gz"), emit: reads
    path 'versions.yml'                               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    def input2 = meta.single_end ? '' : "--input2 ${reads[1]}"
    // Validates the reads: a malformed file fails here with hytax's message naming the
    // file and record. Pairs become one record (mate1 + NNN + reverse complement of mate2).
    """
    hytax prepare \\
        --input ${reads[0]} \\
        ${input2} \\
        --output ${prefix}.reads.fasta.gz \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    echo -n | gzip > ${prefix}.reads.fasta.gz

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
