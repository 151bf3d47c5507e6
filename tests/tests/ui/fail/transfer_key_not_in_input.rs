#[trellis::contract(
    id = "documents@v1",
    display_name = "Documents",
    description = "Stores and serves documents"
)]
pub mod documents {
    use serde::{Deserialize, Serialize};

    /// Input of an upload.
    #[derive(Serialize, Deserialize)]
    pub struct UploadInput {
        pub key: String,
    }

    /// Result of an upload.
    #[derive(Serialize, Deserialize)]
    pub struct UploadOutput {
        pub size: u64,
    }

    /// Uploaded files.
    #[store(purpose = "Uploaded files")]
    pub struct Uploads;

    /// Upload a file.
    #[operation("Files.Upload", transfer(send, store = Uploads, key = "/path"))]
    fn files_upload(input: UploadInput) -> UploadOutput;
}

fn main() {}
