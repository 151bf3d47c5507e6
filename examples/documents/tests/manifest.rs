//! The manifest build.rs writes equals the one the macro embeds, byte for byte.

use documents_example::documents;

#[test]
fn build_rs_output_equals_macro_manifest() {
    let out_dir = include_str!(concat!(env!("OUT_DIR"), "/contracts/documents@v1.json"));
    let committed = include_str!("../contracts/documents@v1.json");
    assert_eq!(documents::MANIFEST_JSON, out_dir);
    assert_eq!(documents::MANIFEST_JSON, committed);
}

#[test]
fn digest_const_matches_the_manifest_file() {
    let digest = trellis_codegen::digest_text(documents::MANIFEST_JSON).expect("manifest is JSON");
    assert_eq!(documents::DIGEST, digest);
    assert_eq!(documents::ID, "documents@v1");
    assert_eq!(documents::LINEAGE, "documents@v1");
}
