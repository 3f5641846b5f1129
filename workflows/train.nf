/*
========================================================================================
    hytax: train BERTax on your own reference (nextflow run . -entry TRAIN)
========================================================================================
    reference FASTA + seq2taxid + taxdump
      -> HYTAX_FRAGMENTS  fragments, evenly per genus; whole genera for train / val / test
      -> HYTAX_PRETRAIN   masked 3-mers + next sentence (optional; from --model's encoder
                          or from scratch)
      -> HYTAX_FINETUNE   the reference's class lists; temperature and per-rank confidence
                          thresholds on the validation genera
      -> HYTAX_EVALUATE   the test genera; the model folder with its card (results/model)
      -> MULTIQC          learning curves, test metrics per rank, reliability
    Training steps checkpoint into --train_checkpoint_dir and continue from it when the run
    is started again (-resume) after being killed.
----------------------------------------------------------------------------------------
*/

include { HYTAX_FRAGMENTS            } from '../modules/local/hytax_fragments'
include { HYTAX_PRETRAIN             } from '../modules/local/hytax_pretrain'
include { HYTAX_FINETUNE             } from '../modules/local/hytax_finetune'
include { HYTAX_EVALUATE             } from '../modules/local/hytax_evaluate'
include { MULTIQC as MULTIQC_TRAIN   } from '../modules/local/multiqc'
include { validateParameters         } from '../subworkflows/local/utils_hytax_pipeline/parameters'
include { softwareVersionsToYAML     } from '../subworkflows/local/utils_hytax_pipeline'
include { paramsSummaryMultiqc       } from '../subworkflows/local/utils_hytax_pipeline'

workflow HYTAX_TRAIN {

    take:
    reference_fasta       // string: reference sequences (FASTA, gz)
    tax_mapping           // string: sequence id -> taxid TSV
    taxdump               // string: NCBI taxdump folder
    encoder               // string: model folder whose encoder training starts from, or null (scratch)
    pretrain              // boolean: pre-train (MLM + NSP) before fine-tuning
    checkpoint_dir        // string: folder for checkpoints, kept between runs
    multiqc_config        // string: the pipeline's MultiQC config
    extra_multiqc_config  // string: the user's MultiQC config, or null
    summary_params        // value:  group -> [param: value], for the MultiQC summary
    outdir                // string: --outdir

    main:
    ch_versions = channel.empty()
    // the same folder for every run, made now so that containers can mount it
    def checkpoints = file(checkpoint_dir)
    checkpoints.mkdirs()
    def start = encoder ? file(encoder, checkIfExists: true) : []

    // [meta, fragments/]: meta.id names the model after the reference file
    def fasta = file(reference_fasta, checkIfExists: true)
    HYTAX_FRAGMENTS(
        channel.value([[id: referenceId(fasta)], fasta]),
        file(tax_mapping, checkIfExists: true),
        file(taxdump, checkIfExists: true)
    )
    ch_versions = ch_versions.mix(HYTAX_FRAGMENTS.out.versions)

    // encoder for fine-tuning: the pre-trained one, --model's, or none
    ch_logs = channel.empty()
    if (pretrain) {
        HYTAX_PRETRAIN(HYTAX_FRAGMENTS.out.fragments, start, checkpoints)
        ch_encoder = HYTAX_PRETRAIN.out.encoder.map { meta, folder -> folder }
        ch_logs = ch_logs.mix(HYTAX_PRETRAIN.out.metrics)
        ch_versions = ch_versions.mix(HYTAX_PRETRAIN.out.versions)
    } else {
        ch_encoder = channel.value(start)
    }

    // [meta, model/]
    HYTAX_FINETUNE(HYTAX_FRAGMENTS.out.fragments, ch_encoder, checkpoints)
    ch_logs = ch_logs.mix(HYTAX_FINETUNE.out.metrics)
    ch_versions = ch_versions.mix(HYTAX_FINETUNE.out.versions)

    // [meta, model/, fragments/] -> the published model folder, evaluation, MultiQC files
    HYTAX_EVALUATE(
        HYTAX_FINETUNE.out.model.join(HYTAX_FRAGMENTS.out.fragments),
        ch_logs.map { meta, log -> log }.collect()
    )
    ch_versions = ch_versions.mix(HYTAX_EVALUATE.out.versions)

    ch_software_versions = softwareVersionsToYAML(ch_versions)
        .collectFile(storeDir: "${outdir}/pipeline_info", name: 'hytax_train_software_mqc_versions.yml', sort: true, newLine: true)
    ch_summary = summary_params
        .map { summary -> paramsSummaryMultiqc(summary) }
        .collectFile(name: 'workflow_summary_mqc.yaml')

    // [meta(id: multiqc), [files]]
    ch_multiqc_files = channel.empty()
        .mix(HYTAX_EVALUATE.out.multiqc.flatten())
        .mix(ch_software_versions)
        .mix(ch_summary)
        .collect(sort: { a, b -> a.name <=> b.name })
        .map { files -> [[id: 'multiqc'], files] }
    MULTIQC_TRAIN(
        ch_multiqc_files,
        file(multiqc_config, checkIfExists: true),
        extra_multiqc_config ? file(extra_multiqc_config, checkIfExists: true) : []
    )

    emit:
    model          = HYTAX_EVALUATE.out.model     // channel: [meta, model/]
    multiqc_report = MULTIQC_TRAIN.out.report     // channel: multiqc_report.html
    versions       = ch_versions                  // channel: versions.yml
}

// The reference file's name without its FASTA suffixes: names the model and its files
def referenceId(fasta) {
    return fasta.name.replaceAll(/\.(fa|fasta|fna|fas)(\.gz)?$/, '').replaceAll(/[^A-Za-z0-9_-]/, '_')
}

// Every problem with the training parameters at once, then stop (the schema's checks too)
def checkTrainParameters(Map p, Map schema) {
    def errors = p.validate_params ? validateParameters(p, schema) : []
    if (p.mmseqs_db) {
        errors << 'training reads the reference sequences: give --reference_fasta, --tax_mapping and --taxdump, not --mmseqs_db'
    }
    ['reference_fasta', 'tax_mapping', 'taxdump'].findAll { !p[it] }.each {
        errors << "--${it} is needed to train (the reference the model learns from)"
    }
    if (!p.train_from_scratch && !p.model) {
        errors << 'no --model to start from: give one, or --train_from_scratch'
    }
    if (errors) {
        error("Invalid parameters:\n  - " + errors.join('\n  - ') + "\nSee docs/usage.md (Train on your reference).")
    }
}
