process HYTAX_FRAGMENTS {
    tag "$meta.id"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container "hytax:${workflow.manifest.version}"

    input:
    tuple val(meta), path(fasta)               // reference sequences, FASTA (gz)
    path tax_mapping                           // sequence id -> taxid TSV
    path taxdump, stageAs: 'taxdump'           // NCBI taxdump folder

    output:
    // train/val/test.fa and .labels.tsv, fragments.json (summary), genera.tsv (genus -> split),
    // taxdump/ (the fragments' lineages)
    tuple val(meta), path("${prefix}_fragments")       , emit: fragments
    tuple val(meta), path("${prefix}.fragments.json")  , emit: summary  // the folder's, for publishing
    tuple val(meta), path("${prefix}.genera.tsv")      , emit: genera   // the folder's, for publishing
    path 'versions.yml'                                , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix   = task.ext.prefix ?: "${meta.id}"
    // whole genera for training, validation and test: calibration and evaluation then see
    // genera the model never saw, like the reads BERTax gets in the pipeline
    """
    hytax fragments \\
        --reference ${fasta} \\
        --tax-mapping ${tax_mapping} \\
        --taxdump ${taxdump} \\
        --split genus \\
        --outdir ${prefix}_fragments \\
        ${args}
    cp ${prefix}_fragments/fragments.json ${prefix}.fragments.json
    cp ${prefix}_fragments/genera.tsv ${prefix}.genera.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p ${prefix}_fragments/taxdump
    touch ${prefix}_fragments/taxdump/nodes.dmp ${prefix}_fragments/taxdump/names.dmp
    for split in train val test; do
        touch ${prefix}_fragments/\$split.fa ${prefix}_fragments/\$split.labels.tsv
    done
    echo '{}' > ${prefix}_fragments/fragments.json
    touch ${prefix}_fragments/genera.tsv
    echo '{}' > ${prefix}.fragments.json
    touch ${prefix}.genera.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        hytax: \$(hytax --version | sed 's/^hytax //')
    END_VERSIONS
    """
}
