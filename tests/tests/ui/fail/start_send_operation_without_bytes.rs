use documents_example::documents;

// An operation with a send transfer starts only together with its bytes.
async fn upload(client: documents::Client) {
    let input = documents::UploadInput {
        key: "a.pdf".into(),
        content_type: "application/pdf".into(),
        metadata: Default::default(),
    };
    let _ = client.operation.files.upload.input(input).start().await;
}

fn main() {
    let _ = upload;
}
