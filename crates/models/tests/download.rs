//! The downloader against a loopback HTTP server (feature `pretrained`; no internet).
#![cfg(feature = "pretrained")]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread::JoinHandle;

use common::{device, fixture, max_abs_diff};
use fastburn_models::weights::{
    Checksum, DownloadOptions, download, download_with, fetch_url, sha256_file,
};
use fastburn_models::{Arch, DownloadError, Error, ResNetConfig};

/// Serves one raw HTTP response per connection, in order, then stops. Returns the URL and
/// the server thread (joining it gives the number of requests served).
fn serve(responses: Vec<Vec<u8>>) -> (String, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/models/resnet50_w4.safetensors",
        listener.local_addr().unwrap()
    );
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        for response in responses {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            assert!(request.starts_with(b"GET /models/resnet50_w4.safetensors HTTP/1.1"));
            // The client may give up early (e.g. on a bad status); ignore write errors.
            let _ = stream.write_all(&response);
            let _ = stream.flush();
            served += 1;
        }
        served
    });
    (url, handle)
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn body() -> Vec<u8> {
    std::fs::read(fixture("resnet50_w4.safetensors")).unwrap()
}

fn sha() -> String {
    sha256_file(fixture("resnet50_w4.safetensors")).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn good_download_is_verified_and_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir
        .path()
        .join("cache")
        .join("weights")
        .join("r50.safetensors");
    let (url, server) = serve(vec![ok(&body()), ok(&body())]);
    download(&url, &dest, &Checksum::Sha256(sha()), true).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body());
    assert_eq!(files_in(dest.parent().unwrap()), ["r50.safetensors"]);
    // torchvision-style prefix check.
    download(
        &url,
        &dest,
        &Checksum::Sha256Prefix(sha()[..8].into()),
        false,
    )
    .unwrap();
    assert_eq!(server.join().unwrap(), 2);
    // The downloaded weights load and compute like the fixture.
    let d = device();
    let build = || {
        ResNetConfig::new(Arch::ResNet50)
            .with_base_width(4)
            .with_num_classes(10)
            .init(&d)
    };
    let a = build().load_weights(&dest).unwrap();
    let b = build()
        .load_weights(fixture("resnet50_w4.safetensors"))
        .unwrap();
    assert_eq!(max_abs_diff(a.fc.weight.val(), b.fc.weight.val()), 0.0);
}

#[test]
fn bad_hash_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r50.safetensors");
    let (url, server) = serve(vec![ok(&body()), ok(&body())]);
    let wrong = Checksum::Sha256Prefix("00000000".into());
    match download(&url, &dest, &wrong, false).unwrap_err() {
        Error::Checksum {
            path,
            expected,
            got,
        } => {
            assert_eq!(path, dest);
            assert_eq!(expected, "00000000");
            assert_eq!(got, sha());
        }
        e => panic!("expected Checksum, got {e:?}"),
    }
    assert!(files_in(dir.path()).is_empty());
    // An existing file is left untouched by a failed download.
    std::fs::write(&dest, b"old").unwrap();
    assert!(download(&url, &dest, &wrong, false).is_err());
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    assert_eq!(files_in(dir.path()), ["r50.safetensors"]);
    server.join().unwrap();
}

#[test]
fn interrupted_download_is_a_typed_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r50.safetensors");
    let body = body();
    let half = body.len() / 2;
    // Announce the full length, send half, close.
    let mut response = ok(&body);
    response.truncate(response.len() - (body.len() - half));
    let (url, server) = serve(vec![response]);
    let err = download(&url, &dest, &Checksum::Sha256(sha()), false).unwrap_err();
    server.join().unwrap();
    match &err {
        Error::Download {
            url: u,
            source: DownloadError::Truncated { expected, got },
        } => {
            assert_eq!(u, &url);
            assert_eq!(*expected, body.len() as u64);
            assert!(*got <= half as u64, "{got}");
        }
        e => panic!("expected Download(Truncated), got {e:?}"),
    }
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn a_trickling_server_is_cut_off_by_the_overall_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r50.safetensors");
    let body = body();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/w", listener.local_addr().unwrap());
    // Headers at once, then one byte every 50 ms: each read beats the read timeout, the
    // whole body would take minutes.
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            request.push(byte[0]);
        }
        let response = ok(&body);
        let head = response.len() - body.len();
        if stream.write_all(&response[..head]).is_err() {
            return;
        }
        for b in &response[head..head + 200] {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if stream.write_all(std::slice::from_ref(b)).is_err() || stream.flush().is_err() {
                return;
            }
        }
    });
    let opts = DownloadOptions {
        read: std::time::Duration::from_secs(5),
        total: std::time::Duration::from_secs(1),
        ..DownloadOptions::default()
    };
    let t0 = std::time::Instant::now();
    let err = download_with(&url, &dest, &Checksum::Sha256(sha()), &opts).unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(
            err,
            Error::Download {
                source: DownloadError::TimedOut { seconds },
                ..
            } if seconds == 1.0
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("longer than 1 s"), "{err}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert!(files_in(dir.path()).is_empty());
    server.join().unwrap();
}

#[test]
fn http_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r50.safetensors");
    let (url, server) = serve(vec![
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    ]);
    let err = download(&url, &dest, &Checksum::Sha256(sha()), false).unwrap_err();
    server.join().unwrap();
    assert!(
        matches!(
            err,
            Error::Download {
                source: DownloadError::Status(404),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(files_in(dir.path()).is_empty());
    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = download(
        &format!("http://127.0.0.1:{port}/x"),
        &dest,
        &Checksum::Sha256(sha()),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Download {
                source: DownloadError::Http(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn fetch_uses_a_verified_cache_and_repairs_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r50.safetensors");
    let checksum = Checksum::Sha256(sha());
    let (url, server) = serve(vec![ok(&body()), ok(&body())]);
    fetch_url(&url, &dest, &checksum, false).unwrap();
    // Cached and valid: no request (the server would serve its second response otherwise).
    fetch_url(&url, &dest, &checksum, false).unwrap();
    // Corrupted in the cache: downloaded again.
    std::fs::write(&dest, b"garbage").unwrap();
    fetch_url(&url, &dest, &checksum, false).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body());
    assert_eq!(server.join().unwrap(), 2);
}
