use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::*;

const LOCAL: &str = "127.0.0.1:0";

/// An echo server on 127.0.0.1; returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(LOCAL).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// An echo server and a proxy in front of it.
async fn proxied_echo() -> FaultProxy {
    let upstream = echo_server().await;
    FaultProxy::start(LOCAL.parse().unwrap(), upstream)
        .await
        .unwrap()
}

async fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(buf, msg);
}

/// True if the stream was closed by the peer (EOF or reset) within a second.
async fn sees_close(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn echo_roundtrip_through_proxy() {
    let proxy = proxied_echo().await;
    let mut stream = connect(&proxy).await;
    roundtrip(&mut stream, b"hello through the proxy").await;
    // A larger payload than one read chunk, in both directions at once.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn({
        let big = big.clone();
        async move { w.write_all(&big).await.unwrap() }
    });
    let mut back = vec![0; big.len()];
    r.read_exact(&mut back).await.unwrap();
    writer.await.unwrap();
    assert_eq!(back, big);
}

#[tokio::test]
async fn half_close_propagates() {
    let proxy = proxied_echo().await;
    let mut stream = connect(&proxy).await;
    stream.write_all(b"last words").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(Duration::from_secs(5), stream.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"last words");
}

#[tokio::test]
async fn latency_adds_rtt_without_capping_throughput() {
    let proxy = proxied_echo().await;
    let control = proxy.control();
    control.set_latency(Duration::from_millis(20), Duration::ZERO);
    let mut stream = connect(&proxy).await;

    let start = Instant::now();
    roundtrip(&mut stream, b"ping").await;
    let rtt = start.elapsed();
    assert!(rtt >= Duration::from_millis(40), "rtt {rtt:?}");

    // 100 pipelined messages, sent as separate chunks, with jitter: all arrive, in
    // order, in far less than 100 x 20 ms.
    control.set_latency(Duration::from_millis(20), Duration::from_millis(10));
    let (mut r, mut w) = stream.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..100u32 {
            w.write_all(&i.to_be_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        w
    });
    for i in 0..100u32 {
        let mut buf = [0u8; 4];
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(u32::from_be_bytes(buf), i, "message out of order");
    }
    let elapsed = start.elapsed();
    writer.await.unwrap();
    assert!(elapsed < Duration::from_millis(700), "elapsed {elapsed:?}");
    assert!(control.stats().chunks_delayed >= 100);

    control.clear_latency();
    let mut stream = connect(&proxy).await;
    let start = Instant::now();
    roundtrip(&mut stream, b"fast").await;
    assert!(start.elapsed() < Duration::from_millis(40));
}

#[tokio::test]
async fn stall_blocks_then_resumes_without_loss() {
    let proxy = proxied_echo().await;
    let control = proxy.control();
    let mut stream = connect(&proxy).await;
    roundtrip(&mut stream, b"before").await;

    control.stall(true);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    stream.write_all(&payload).await.unwrap();
    let mut buf = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(300), stream.read(&mut buf))
            .await
            .is_err(),
        "bytes flowed while stalled"
    );

    control.stall(false);
    let mut back = vec![0; payload.len()];
    timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, payload);
    roundtrip(&mut stream, b"after").await;
}

#[tokio::test]
async fn cut_closes_connections_and_new_ones_work() {
    let proxy = proxied_echo().await;
    let control = proxy.control();
    let mut first = connect(&proxy).await;
    let mut second = connect(&proxy).await;
    roundtrip(&mut first, b"one").await;
    roundtrip(&mut second, b"two").await;

    control.cut();
    assert!(sees_close(&mut first).await);
    assert!(sees_close(&mut second).await);
    wait_until(|| control.stats().connections_active == 0).await;
    assert_eq!(control.stats().connections_cut, 2);

    let mut third = connect(&proxy).await;
    roundtrip(&mut third, b"three").await;
}

#[tokio::test]
async fn refuse_resets_new_and_existing_connections() {
    let proxy = proxied_echo().await;
    let control = proxy.control();
    let mut existing = connect(&proxy).await;
    roundtrip(&mut existing, b"hi").await;

    control.refuse(true);
    assert!(sees_close(&mut existing).await);
    let mut refused = connect(&proxy).await;
    let _ = refused.write_all(b"anyone?").await;
    assert!(sees_close(&mut refused).await);
    wait_until(|| control.stats().connections_refused == 1).await;

    control.refuse(false);
    let mut again = connect(&proxy).await;
    roundtrip(&mut again, b"back").await;
}

#[tokio::test]
async fn stats_count_connections_and_bytes() {
    let proxy = proxied_echo().await;
    let control = proxy.control();
    assert_eq!(control.stats(), ProxyStats::default());

    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    roundtrip(&mut a, b"12345").await;
    roundtrip(&mut b, b"1234567890").await;
    let stats = control.stats();
    assert_eq!(stats.connections_accepted, 2);
    assert_eq!(stats.connections_active, 2);
    assert_eq!(stats.bytes_to_upstream, 15);
    assert_eq!(stats.bytes_to_client, 15);
    assert_eq!(stats.chunks_delayed, 0);

    drop(a);
    drop(b);
    wait_until(|| control.stats().connections_active == 0).await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_everything() {
    let proxy = proxied_echo().await;
    let addr = proxy.local_addr();
    let mut stream = connect(&proxy).await;
    roundtrip(&mut stream, b"x").await;
    drop(proxy);
    assert!(sees_close(&mut stream).await);
    // The listener is gone too (give the aborted task a moment to be dropped).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn unreachable_upstream_closes_the_client() {
    // Bind and drop a listener to get a port with nothing behind it.
    let dead = TcpListener::bind(LOCAL)
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(LOCAL.parse().unwrap(), dead)
        .await
        .unwrap();
    let mut stream = connect(&proxy).await;
    assert!(sees_close(&mut stream).await);
}
