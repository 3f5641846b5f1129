/*
    REPORT_RESULTS: per-sample reports from the merged tables, and the MultiQC tables of
    all samples together.
*/

include { HYTAX_REPORT        } from '../../../modules/local/hytax_report'
include { HYTAX_MULTIQCTABLES } from '../../../modules/local/hytax_multiqctables'

workflow REPORT_RESULTS {

    take:
    merged    // channel: [meta, hytax.tsv]
    taxdump   // value:   [tax_meta, folder]

    main:
    // [meta, kraken2.report.txt], [meta, profile.tsv], [meta, krona.txt], [meta, summary.json]
    HYTAX_REPORT(merged, taxdump)

    // [meta(id: all_samples), [summary.json, ...]]: one task once every sample is reported
    ch_summaries = HYTAX_REPORT.out.summary
        .map { meta, summary -> summary }
        .collect(sort: { a, b -> a.name <=> b.name })
        .map { summaries -> [[id: 'all_samples'], summaries] }
    // [meta, [*_mqc.tsv]]
    HYTAX_MULTIQCTABLES(ch_summaries)

    ch_versions = channel.empty()
        .mix(HYTAX_REPORT.out.versions)
        .mix(HYTAX_MULTIQCTABLES.out.versions)

    emit:
    kraken2  = HYTAX_REPORT.out.kraken2                // channel: [meta, kraken2.report.txt]
    profile  = HYTAX_REPORT.out.profile                // channel: [meta, profile.tsv]
    krona    = HYTAX_REPORT.out.krona                  // channel: [meta, krona.txt]
    tables   = HYTAX_MULTIQCTABLES.out.tables          // channel: [meta, [*_mqc.tsv]]
    versions = ch_versions                             // channel: versions.yml
}
