/*
    REPORT_RESULTS: per-sample reports from the merged tables; the run's taxpasta wide tables
    and Krona text; the MultiQC tables of all samples together.
*/

include { HYTAX_REPORT        } from '../../../modules/local/hytax_report'
include { HYTAX_COMBINE       } from '../../../modules/local/hytax_combine'
include { HYTAX_MULTIQCTABLES } from '../../../modules/local/hytax_multiqctables'

workflow REPORT_RESULTS {

    take:
    merged    // channel: [meta, hytax.tsv]
    claims    // channel: [tier_meta, <id>.<db_name>.claims.tsv], per sample and tier
    taxdump   // value:   [tax_meta, folder]

    main:
    // [meta, kraken2.report.txt], [meta, profile.tsv], [meta, krona.txt], [meta, summary.json]
    HYTAX_REPORT(merged, taxdump)

    // [meta(id: all_samples), [hytax.tsv, ...]]: one task over every sample's merged table
    ch_all_merged = merged
        .map { meta, table -> table }
        .collect(sort: { a, b -> a.name <=> b.name })
        .map { tables -> [[id: 'all_samples'], tables] }
    // [claims.tsv, ...]: every sample's and tier's <id>.<db_name>.claims.tsv, for the per-tier tables
    ch_all_claims = claims
        .map { meta, table -> table }
        .collect(sort: { a, b -> a.name <=> b.name })
        .ifEmpty([])
    // [meta, hytax_merged.tsv], [meta, [mmseqs2_<db>.tsv, ...]], [meta, hytax.krona.txt], [meta, krona/]
    HYTAX_COMBINE(ch_all_merged, ch_all_claims, taxdump)

    // [meta(id: all_samples), [summary.json, ...]]: one task once every sample is reported
    ch_summaries = HYTAX_REPORT.out.summary
        .map { meta, summary -> summary }
        .collect(sort: { a, b -> a.name <=> b.name })
        .map { summaries -> [[id: 'all_samples'], summaries] }
    // [meta, [*_mqc.tsv]]
    HYTAX_MULTIQCTABLES(ch_summaries)

    ch_versions = channel.empty()
        .mix(HYTAX_REPORT.out.versions)
        .mix(HYTAX_COMBINE.out.versions)
        .mix(HYTAX_MULTIQCTABLES.out.versions)

    emit:
    kraken2  = HYTAX_REPORT.out.kraken2                // channel: [meta, kraken2.report.txt]
    profile  = HYTAX_REPORT.out.profile                // channel: [meta, profile.tsv]
    krona    = HYTAX_REPORT.out.krona                  // channel: [meta, krona.txt]
    combined = HYTAX_COMBINE.out.merged                // channel: [meta(id: all_samples), hytax_merged.tsv]
    tiers    = HYTAX_COMBINE.out.tiers                 // channel: [meta(id: all_samples), [mmseqs2_<db>.tsv, ...]]
    tables   = HYTAX_MULTIQCTABLES.out.tables          // channel: [meta, [*_mqc.tsv]]
    versions = ch_versions                             // channel: versions.yml
}
