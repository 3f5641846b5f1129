/*
========================================================================================
    hytax: pipeline start and end
========================================================================================
    PIPELINE_INITIALISATION  checks every parameter (parameters.nf), then reads the samples
                             from --input or --reads (samplesheet.nf).
    PIPELINE_COMPLETION      a short summary when the run ends (completion.nf).
    One concern per file, all re-exported from here so that callers include from this
    folder only:
        parameters.nf   schema and parameter checks
        samplesheet.nf  samples from a samplesheet or a glob
        summary.nf      --help and the parameter summary for MultiQC
        methods.nf      the methods text for MultiQC
        versions.nf     software versions for MultiQC
        completion.nf   the end-of-run summary
    Plain Groovy: no plugin (nf-schema) is needed or downloaded.
----------------------------------------------------------------------------------------
*/

include { checkParameters        } from './parameters'
include { loadJson               } from './parameters'
include { readSamplesheet        } from './samplesheet'
include { readsGlobChannel       } from './samplesheet'
include { helpMessage            } from './summary'
include { paramsSummaryMap       } from './summary'
include { paramsSummaryMultiqc   } from './summary'
include { methodsDescriptionText } from './methods'
include { softwareVersionsToYAML } from './versions'
include { completionSummary      } from './completion'

workflow PIPELINE_INITIALISATION {

    take:
    parameters      // map: params
    schema_path     // string: nextflow_schema.json
    sheet_schema    // string: assets/schema_input.json

    main:
    schema = loadJson(schema_path)
    checkParameters(parameters, schema)

    // [meta, reads] per sample: meta.id, meta.single_end, meta.long_reads; reads: every run's
    // files, [run1, run2, ...] single-end or [run1_R1, run1_R2, run2_R1, run2_R2, ...] paired
    ch_samples = parameters.input
        ? channel.fromList(readSamplesheet(parameters.input, loadJson(sheet_schema)))
        : readsGlobChannel(parameters.reads)

    emit:
    samples        = ch_samples
    summary_params = paramsSummaryMap(parameters, schema)
}

workflow PIPELINE_COMPLETION {

    take:
    outdir          // string: --outdir

    main:
    // the handler's delegate is the workflow metadata: read it in a function
    workflow.onComplete {
        completionSummary(outdir)
    }
}
