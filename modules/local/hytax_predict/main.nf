process HYTAX_PREDICT {
    tag "$meta.id"
    label 'process_gpu'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(routed)  // reads MMseqs2 left open, FASTA (gz)
    path model                     // model directory (config + weights)

    output:
    tuple val(meta), path("${prefix}.bertax.tsv"), emit: predictions
    path 'versions.yml'                           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    // The pipeline grants the GPU (conf/gpu.config, --use_gpu); the module only follows it
    def device = task.accelerator ? 'cuda' : 'cpu'
    """
    hytax predict \\
        --model ${model} \\
        --input ${routed} \\
        --output ${prefix}.bertax.tsv \\
        --device ${device} \\
        --threads ${task.cpus} \\
        --progress off \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        torch: \$(python3 -c 'from importlib.metadata import version; print(version("torch"))')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.bertax.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        torch: \$(python3 -c 'from importlib.metadata import version; print(version("torch"))')
    END_VERSIONS
    """
}
