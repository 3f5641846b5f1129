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
            params.mmseqs_db,
            params.reference_fasta,
            params.taxdump,
            params.tax_mapping,
            params.model,
            params.route,
            params.route_rank,
            params.min_identity,
            params.min_aln_fraction,
            params.min_confidence,
            "${projectDir}/assets/multiqc_config.yml",
            params.multiqc_config,
            PIPELINE_INITIALISATION.out.summary_params,
            params.outdir
        )

        PIPELINE_COMPLETION(params.outdir)
    }
}
