process HYTAX_EVALUATE {
    tag "$meta.id"
    label 'process_gpu'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(model, stageAs: 'trained'), path(fragments)  // fine-tuned model, hytax fragments folder
    path metrics, stageAs: 'logs/*'                                    // <prefix>.<stage>.metrics.jsonl of each training step

    output:
    tuple val(meta), path("${prefix}_model")      , emit: model       // weights, config, README.md card, figures
    tuple val(meta), path("${prefix}_evaluation") , emit: evaluation  // summary, confusion tables, plots
    path 'multiqc/*_mqc.json'                     , emit: multiqc
    path 'versions.yml'                           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix   = task.ext.prefix ?: "${meta.id}"
    // The pipeline grants the GPU (conf/gpu.config, --use_gpu); the module only follows it
    def device = task.accelerator ? 'cuda' : 'cpu'
    // the test genera: classified as the pipeline classifies reads (hytax predict defaults)
    """
    hytax predict \\
        --model trained \\
        --input ${fragments}/test.fa \\
        --output test.predictions.tsv \\
        --probabilities test.probabilities.jsonl \\
        --device ${device} \\
        --threads ${task.cpus} \\
        --progress off
    hytax evaluate \\
        --predictions test.predictions.tsv \\
        --truth ${fragments}/test.labels.tsv \\
        --probabilities test.probabilities.jsonl \\
        --model trained \\
        --taxdump ${fragments}/taxdump \\
        --outdir ${prefix}_evaluation \\
        --multiqc multiqc \\
        --card ${prefix}_model \\
        --training-log logs/*.metrics.jsonl \\
        --fragments ${fragments} \\
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
    mkdir ${prefix}_model ${prefix}_evaluation multiqc
    touch ${prefix}_model/model.safetensors ${prefix}_model/config.json ${prefix}_model/README.md
    echo '{}' > ${prefix}_evaluation/summary.json
    echo '{}' > multiqc/hytax_train_evaluation_mqc.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
        torch: \$(python3 -c 'from importlib.metadata import version; print(version("torch"))')
    END_VERSIONS
    """
}
