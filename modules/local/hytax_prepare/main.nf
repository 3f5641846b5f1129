process HYTAX_PREPARE {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(reads)  // every run of the sample: [run1, run2, ...] single-end (meta.single_end),
                                  // [run1_R1, run1_R2, run2_R1, run2_R2, ...] paired; FASTQ or FASTA, plain or gzip

    output:
    tuple val(meta), path("${prefix}.reads.fasta.gz"), emit: reads
    path 'versions.yml'                               , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    // one file is staged as a path, several as a list
    def files  = reads instanceof List ? reads : [reads]
    def inputs = meta.single_end
        ? files.collect { run -> "--input ${run}" }
        : files.collate(2).collect { r1, r2 -> "--input ${r1} --input2 ${r2}" }
    // Validates the reads: a malformed file, or a read id twice in the sample, fails here with
    // hytax's message naming the file and record. Runs are written one after another; pairs
    // become one record (mate1 + NNN + reverse complement of mate2).
    """
    hytax prepare \\
        ${inputs.join(' ')} \\
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
