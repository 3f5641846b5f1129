/*
========================================================================================
    hytax: methods text for the MultiQC report
========================================================================================
    Built from params: what this run did, with references.
----------------------------------------------------------------------------------------
*/

include { escapeHtml } from './summary'

// MultiQC custom content: what was done, with references. Reads params itself (as the
// parameter summary does), so no workflow has to carry a value only to print it.
def methodsDescriptionText(Map p = params) {
    def built = !p.mmseqs_db && !p.databases
    def reference = p.databases ? "the MMseqs2 databases of ${escapeHtml(file(p.databases.toString()).name)}, in that order"
        : p.mmseqs_db ? "the MMseqs2 database ${escapeHtml(file(p.mmseqs_db.toString()).name)}"
        : "a nucleotide database built from ${escapeHtml(file(p.reference_fasta.toString()).name)}" +
          (p.skip_protein_db ? '' : ', then a protein database of the genes pyrodigal (Larralde 2022; Prodigal, Hyatt et al. 2010) found in it (translated search)')
    def model = file(p.model.toString()).name
    def weak = []
    if (p.min_identity) weak << "nucleotide hits below the identity minimums ${escapeHtml(p.min_identity.toString())}"
    if (p.min_aln_fraction) weak << "hits covering less than ${p.min_aln_fraction} of the read"
    if (built && !p.skip_protein_db && p.protein_min_identity) weak << "protein hits below the amino-acid identity minimums ${escapeHtml(p.protein_min_identity.toString())}"
    def html = """\
        <h4>Methods</h4>
        <p>Reads were classified with hytax ${workflow.manifest.version} (Nextflow ${workflow.nextflow.version};
        Di Tommaso et al. 2017). Paired reads were joined into one unit per pair. MMseqs2 (Mirdita et al. 2021)
        assigned each read the lowest common ancestor of its best hits (<code>mmseqs taxonomy</code>) against
        ${reference}; a read kept the answer of the first database that placed it. Reads every database left
        ${p.route == 'below_rank' ? "unclassified at ${p.route_rank} level" : 'unclassified'}${weak ? " (a database placing none on ${weak.join(' or ')})" : ''}
        were classified by a BERTax model (Mock et al. 2022), ${escapeHtml(model)}, which filled a rank MMseqs2 left open
        where its probability was at least ${p.min_confidence}. Reports were summarised with MultiQC
        (Ewels et al. 2016).</p>
        <h4>References</h4>
        <ul>
        <li>Di Tommaso P, et al. Nextflow enables reproducible computational workflows. Nat Biotechnol 35, 316-319 (2017). doi:10.1038/nbt.3820</li>
        <li>Mirdita M, Steinegger M, Breitwieser F, Söding J, Levy Karin E. Fast and sensitive taxonomic assignment to metagenomic contigs. Bioinformatics 37, 3029-3031 (2021). doi:10.1093/bioinformatics/btab184</li>
        <li>Mock F, Kretschmer F, Kriese A, Böcker S, Marz M. Taxonomic classification of DNA sequences beyond sequence similarity using deep neural networks. PNAS 119, e2122636119 (2022). doi:10.1073/pnas.2122636119</li>
        <li>Hyatt D, et al. Prodigal: prokaryotic gene recognition and translation initiation site identification. BMC Bioinformatics 11, 119 (2010). doi:10.1186/1471-2105-11-119</li>
        <li>Larralde M. Pyrodigal: Python bindings and interface to Prodigal, an efficient method for gene prediction in prokaryotes. J Open Source Softw 7, 4296 (2022). doi:10.21105/joss.04296</li>
        <li>Ewels P, Magnusson M, Lundin S, Käller M. MultiQC: summarize analysis results for multiple tools and samples in a single report. Bioinformatics 32, 3047-3048 (2016). doi:10.1093/bioinformatics/btw354</li>
        </ul>
        """.stripIndent()
    return """\
        id: '${workflow.manifest.name.replace('/', '-')}-methods-description'
        description: ' - suggested text and references for a methods section.'
        section_name: 'hytax methods description'
        section_href: 'https://github.com/hytax/hytax'
        plot_type: 'html'
        data: |
        """.stripIndent() + html.readLines().collect { "    ${it}" }.join('\n') + '\n'
}
