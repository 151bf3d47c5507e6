use documents_example::documents;

// A reattached operation observes and cancels; it never sends bytes.
fn resume(client: documents::Client, id: String) {
    let op = client.operation.files.upload.attach(id);
    let _ = op.transfer(b"the rest".as_slice());
}

fn main() {
    let _ = resume;
}
