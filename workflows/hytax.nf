/*
========================================================================================
    hytax: the DAG
========================================================================================
    reference -> PREPARE_REFERENCE (once): database tiers (nucleotide, protein) -----+
    reads -> CLASSIFY_READS: prepare, MMseqs2 per tier -> claims, route, BERTax, merge
          -> REPORT_RESULTS -> MULTIQC
----------------------------------------------------------------------------------------
*/

include { PREPARE_REFERENCE      } from '../subworkflows/local/prepare_reference'
include { CLASSIFY_READS         } from '../subworkflows/local/classify_reads'
include { REPORT_RESULTS         } from '../subworkflows/local/report_results'
include { MULTIQC                } from '../modules/local/multiqc'
include { softwareVersionsToYAML } from '../subworkflows/local/utils_hytax_pipeline'
include { paramsSummaryMultiqc   } from '../subworkflows/local/utils_hytax_pipeline'
include { methodsDescriptionText } from '../subworkflows/local/utils_hytax_pipeline'

workflow HYTAX {

    take:
    samples               // channel: [meta, [reads]]
    parameters            // map: the reference options (--databases, --mmseqs_db, or what to build from)
    model                 // string: BERTax model folder
    multiqc_config        // string: the pipeline's MultiQC config
    extra_multiqc_config  // string: the user's MultiQC config, or null
    summary_params        // value:  group -> [param: value], for the MultiQC summary
    outdir                // string: --outdir

    main:
    ch_versions = channel.empty()

    // value: [[db_meta, folder], ...] in tier order; [tax_meta, folder]
    PREPARE_REFERENCE(parameters)
    ch_versions = ch_versions.mix(PREPARE_REFERENCE.out.versions)

    // [meta, hytax.tsv]; route and merge options come through ext.args (conf/modules.config)
    CLASSIFY_READS(
        samples,
        PREPARE_REFERENCE.out.tiers,
        PREPARE_REFERENCE.out.taxdump,
        file(model, checkIfExists: true)
    )
    ch_versions = ch_versions.mix(CLASSIFY_READS.out.versions)

    REPORT_RESULTS(CLASSIFY_READS.out.merged, CLASSIFY_READS.out.claims, PREPARE_REFERENCE.out.taxdump)
    ch_versions = ch_versions.mix(REPORT_RESULTS.out.versions)

    // pipeline_info/hytax_software_mqc_versions.yml: every tool's version, once
    ch_software_versions = softwareVersionsToYAML(ch_versions)
        .collectFile(storeDir: "${outdir}/pipeline_info", name: 'hytax_software_mqc_versions.yml', sort: true, newLine: true)

    ch_summary = summary_params
        .map { summary -> paramsSummaryMultiqc(summary) }
        .collectFile(name: 'workflow_summary_mqc.yaml')
    ch_methods = channel.value(methodsDescriptionText())
        .collectFile(name: 'methods_description_mqc.yaml')

    // [meta(id: multiqc), [files]]: our tables, kraken2 reports, versions, summary, methods
    ch_multiqc_files = channel.empty()
        .mix(REPORT_RESULTS.out.tables.map { meta, tables -> tables }.flatten())
        .mix(REPORT_RESULTS.out.kraken2.map { meta, report -> report })
        .mix(ch_software_versions)
        .mix(ch_summary)
        .mix(ch_methods)
        .collect(sort: { a, b -> a.name <=> b.name })
        .map { files -> [[id: 'multiqc'], files] }

    MULTIQC(
        ch_multiqc_files,
        file(multiqc_config, checkIfExists: true),
        extra_multiqc_config ? file(extra_multiqc_config, checkIfExists: true) : []
    )

    emit:
    multiqc_report = MULTIQC.out.report  // channel: multiqc_report.html
    versions       = ch_versions         // channel: versions.yml
}
