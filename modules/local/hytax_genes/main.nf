process HYTAX_GENES {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(fasta)  // reference sequences (FASTA, gz)
    path tax_mapping              // sequence id -> taxid

    output:
    tuple val(meta), path("${prefix}.faa.gz"), emit: proteins
    path "${prefix}.taxids.tsv"              , emit: mapping
    path 'versions.yml'                      , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix   = task.ext.prefix ?: "${meta.id}"
    """
    hytax genes \\
        --fasta ${fasta} \\
        --mapping ${tax_mapping} \\
        --proteins ${prefix}.faa.gz \\
        --protein-mapping ${prefix}.taxids.tsv \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        pyrodigal: \$(python3 -c 'import pyrodigal; print(pyrodigal.__version__)')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    echo -n | gzip > ${prefix}.faa.gz
    touch ${prefix}.taxids.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        pyrodigal: \$(python3 -c 'import pyrodigal; print(pyrodigal.__version__)')
    END_VERSIONS
    """
}
