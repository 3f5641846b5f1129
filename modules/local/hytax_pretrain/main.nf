process HYTAX_PRETRAIN {
    tag "$meta.id"
    label 'process_gpu'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"
    // The checkpoint folder is written while this task runs: hash inputs by path and size
    // only (a folder's size does not change), so -resume still finds the finished task cached
    cache 'lenient'

    input:
    tuple val(meta), path(fragments)                  // hytax fragments folder
    path encoder                                      // model folder to start from, or [] (random weights)
    path checkpoints, stageAs: 'checkpoints'          // kept between runs: training resumes from it

    output:
    tuple val(meta), path("${prefix}_pretrain")               , emit: encoder
    tuple val(meta), path("${prefix}.pretrain.metrics.jsonl") , emit: metrics
    tuple val(meta), path("${prefix}.pretrain.log")           , emit: log
    path 'versions.yml'                                       , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix   = task.ext.prefix ?: "${meta.id}"
    // The pipeline grants the GPU (conf/gpu.config, --use_gpu); the module only follows it
    def device    = task.accelerator ? 'cuda' : 'cpu'
    def precision = task.accelerator ? 'bf16' : 'fp32'
    def start     = encoder ? "--encoder ${encoder}" : ''
    // --resume auto continues from the checkpoint of a killed run with the same data and
    // settings; --time-limit-total counts the minutes of every run together
    """
    hytax pretrain \\
        --data ${fragments} \\
        --outdir ${prefix}_pretrain \\
        --workdir checkpoints/${prefix}/pretrain \\
        --resume auto \\
        --time-limit-total \\
        ${start} \\
        --device ${device} \\
        --precision ${precision} \\
        --threads ${task.cpus} \\
        --progress off \\
        ${args} \\
        2>&1 | tee ${prefix}.pretrain.log
    cp checkpoints/${prefix}/pretrain/metrics.jsonl ${prefix}.pretrain.metrics.jsonl

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        torch: \$(python3 -c 'from importlib.metadata import version; print(version("torch"))')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir ${prefix}_pretrain
    touch ${prefix}_pretrain/pretrain.safetensors ${prefix}_pretrain/pretrain.json
    touch ${prefix}.pretrain.metrics.jsonl ${prefix}.pretrain.log

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        torch: \$(python3 -c 'from importlib.metadata import version; print(version("torch"))')
    END_VERSIONS
    """
}
