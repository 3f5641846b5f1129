#!/usr/bin/env nextflow
/*
========================================================================================
    hytax: hybrid taxonomic classification of metagenomic reads
========================================================================================
    MMseqs2 taxonomy per read against a reference; the reads it cannot place go to BERTax;
    both merge into one per-rank table, per-sample reports and one MultiQC report.
    Docs: docs/usage.md, docs/output.md, docs/formats.md
----------------------------------------------------------------------------------------
*/

include { HYTAX                   } from './workflows/hytax'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_hytax_pipeline'
include { PIPELINE_COMPLETION     } from './subworkflows/local/utils_hytax_pipeline'
include { helpMessage             } from './subworkflows/local/utils_hytax_pipeline'
include { HYTAX_TRAIN             } from './workflows/train'
include { checkTrainParameters    } from './workflows/train'
include { loadJson                } from './subworkflows/local/utils_hytax_pipeline'
include { paramsSummaryMap        } from './subworkflows/local/utils_hytax_pipeline'

workflow {

    main:
    if (params.help) {
        log.info helpMessage("${projectDir}/nextflow_schema.json")
    } else {
        // checks every parameter; [meta, [reads]] per sample
        PIPELINE_INITIALISATION(
            params,
            "${projectDir}/nextflow_schema.json",
            "${projectDir}/assets/schema_input.json"
        )

        HYTAX(
            PIPELINE_INITIALISATION.out.samples,
            params,
            params.model,
            "${projectDir}/assets/multiqc_config.yml",
            params.multiqc_config,
            PIPELINE_INITIALISATION.out.summary_params,
            params.outdir
        )

        PIPELINE_COMPLETION(params.outdir)
    }
}

// Train BERTax on your reference: nextflow run . -entry TRAIN (docs/usage.md)
workflow TRAIN {

    main:
    def schema = loadJson("${projectDir}/nextflow_schema.json")
    checkTrainParameters(params, schema)

    HYTAX_TRAIN(
        params.reference_fasta,
        params.tax_mapping,
        params.taxdump,
        params.train_from_scratch ? null : params.model,
        params.train_pretrain_fraction > 0,
        params.train_checkpoint_dir ?: "${params.outdir}/train/checkpoints",
        "${projectDir}/assets/multiqc_config.yml",
        params.multiqc_config,
        channel.value(paramsSummaryMap(params, schema)),
        params.outdir
    )

    PIPELINE_COMPLETION(params.outdir)
}
