// The documents example's contract, compiled on its own.
include!("../../../../examples/documents/src/contract.rs");

fn main() {
    assert_eq!(documents::ID, "documents@v1");
    assert_eq!(documents::DIGEST.len(), 43);
}
