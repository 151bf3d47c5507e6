//! Readiness probes: JetStream account info and the `/healthz` endpoint.

use std::time::Duration;

/// Whether a JetStream-enabled server at `url` accepts a connection and
/// answers an account-info request; returns the server's name.
pub(crate) async fn jetstream_answers(
    url: &str,
    options: async_nats::ConnectOptions,
) -> Result<String, String> {
    let client = options.connect(url).await.map_err(|e| e.to_string())?;
    let name = client.server_info().server_name;
    let js = async_nats::jetstream::new(client);
    js.query_account()
        .await
        .map(|_| name)
        .map_err(|e| e.to_string())
}

/// `GET /healthz` on a node's monitoring port: `Ok` when the server reports
/// itself healthy (for JetStream: current with the meta leader and with
/// every stream and consumer it hosts), else the reason.
pub(crate) async fn healthz(http_port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http_port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("writing: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        Ok::<_, String>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5s".to_owned())??;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        Err(format!("{status_line}: {}", body.trim()))
    }
}
