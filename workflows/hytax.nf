/*
========================================================================================
    hytax: the DAG
========================================================================================
    reference -> PREPARE_REFERENCE (once) -----------------+
    reads -> CLASSIFY_READS: prepare, MMseqs2, route, BERTax, merge -> REPORT_RESULTS -> MULTIQC
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
    mmseqs_db             // string: prebuilt seqTaxDB prefix, or null
    reference_fasta       // string: FASTA to build the database from, or null
    taxdump               // string: taxdump folder, or null
    tax_mapping           // string: sequence id -> taxid, or null
    model                 // string: BERTax model folder
    route                 // string: unclassified | below_rank
    route_rank            // string: superkingdom | phylum | genus
    min_identity          // string: per-rank identity minimums, or ''
    min_aln_fraction      // number: share of a read MMseqs2's best hit must cover (for the methods text; HYTAX_ROUTE takes it through ext.args)
    min_confidence        // number: BERTax probability needed to fill a rank
    multiqc_config        // string: the pipeline's MultiQC config
    extra_multiqc_config  // string: the user's MultiQC config, or null
    summary_params        // value:  group -> [param: value], for the MultiQC summary
    outdir                // string: --outdir

    main:
    ch_versions = channel.empty()

    // value: [db_meta, folder], [tax_meta, folder]
    PREPARE_REFERENCE(mmseqs_db, reference_fasta, taxdump, tax_mapping)
    ch_versions = ch_versions.mix(PREPARE_REFERENCE.out.versions)

    // [meta, hytax.tsv]
    CLASSIFY_READS(
        samples,
        PREPARE_REFERENCE.out.db,
        PREPARE_REFERENCE.out.taxdump,
        file(model, checkIfExists: true),
        route,
        route_rank,
        min_identity,
        min_confidence
    )
    ch_versions = ch_versions.mix(CLASSIFY_READS.out.versions)

    REPORT_RESULTS(CLASSIFY_READS.out.merged, PREPARE_REFERENCE.out.taxdump)
    ch_versions = ch_versions.mix(REPORT_RESULTS.out.versions)

    // pipeline_info/hytax_software_mqc_versions.yml: every tool's version, once
    ch_software_versions = softwareVersionsToYAML(ch_versions)
        .collectFile(storeDir: "${outdir}/pipeline_info", name: 'hytax_software_mqc_versions.yml', sort: true, newLine: true)

    ch_summary = summary_params
        .map { summary -> paramsSummaryMultiqc(summary) }
        .collectFile(name: 'workflow_summary_mqc.yaml')
    ch_methods = channel.value(methodsDescriptionText(mmseqs_db, reference_fasta, model, route, route_rank, min_identity, min_aln_fraction, min_confidence))
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
