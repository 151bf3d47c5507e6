// The items example's contract, compiled on its own.
include!("../../../../examples/items/src/contract.rs");

fn main() {
    assert_eq!(items::ID, "items@v1");
    assert_eq!(items::DIGEST.len(), 43);
}
