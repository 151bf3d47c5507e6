//! The manifest build.rs writes equals the one the macro embeds, byte for byte.

use items_example::items;

#[test]
fn build_rs_output_equals_macro_manifest() {
    let out_dir = include_str!(concat!(env!("OUT_DIR"), "/contracts/items@v1.json"));
    let committed = include_str!("../contracts/items@v1.json");
    assert_eq!(items::MANIFEST_JSON, out_dir);
    assert_eq!(items::MANIFEST_JSON, committed);
}

#[test]
fn digest_const_matches_the_manifest_file() {
    let digest = trellis_codegen::digest_text(items::MANIFEST_JSON).expect("manifest is JSON");
    assert_eq!(items::DIGEST, digest);
    assert_eq!(items::ID, "items@v1");
    assert_eq!(items::LINEAGE, "items@v1");
}
