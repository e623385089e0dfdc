//! Long reads as streams taken in batches: a periodic job over a million members holds one
//! batch at a time, and writes each batch before it reads the next.

use futures_util::stream::BoxStream;
use futures_util::TryStreamExt as _;

use super::StoreError;

/// Rows read one by one from an open query.
pub type RowStream<'q, T> = BoxStream<'q, Result<T, StoreError>>;

/// Up to `size` rows from the stream. The stream is dropped (and its connection given back) as
/// soon as it ends, before the caller writes the last batch; `None` then tells the caller to stop.
pub async fn next_batch<T>(
    rows: &mut Option<RowStream<'_, T>>,
    size: usize,
) -> Result<Vec<T>, StoreError> {
    let mut batch = Vec::new();
    while let Some(stream) = rows.as_mut() {
        match stream.try_next().await? {
            Some(row) => batch.push(row),
            None => *rows = None,
        }
        if batch.len() >= size {
            break;
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    fn rows(n: usize) -> Option<RowStream<'static, String>> {
        let rows: Vec<Result<String, StoreError>> = (0..n).map(|i| Ok(format!("u{i}"))).collect();
        Some(futures_util::stream::iter(rows).boxed())
    }

    #[tokio::test]
    async fn batches_are_full_until_the_last_and_the_stream_is_let_go_when_it_ends() {
        let mut stream = rows(1001);
        let mut sizes = Vec::new();
        let mut seen = Vec::new();
        while stream.is_some() {
            let batch = next_batch(&mut stream, 500).await.expect("batch");
            sizes.push(batch.len());
            seen.extend(batch);
        }
        assert_eq!(sizes, [500, 500, 1]);
        assert_eq!(seen.len(), 1001);
        assert_eq!(seen.last().map(String::as_str), Some("u1000"));

        // Exactly a full batch: the end is found on the next read, with nothing left.
        let mut stream = rows(500);
        assert_eq!(next_batch(&mut stream, 500).await.expect("full").len(), 500);
        assert!(stream.is_some());
        assert!(next_batch(&mut stream, 500).await.expect("end").is_empty());
        assert!(stream.is_none());
    }

    #[tokio::test]
    async fn an_error_is_passed_on() {
        let rows: Vec<Result<String, StoreError>> =
            vec![Ok("u0".into()), Err(StoreError::Unavailable("gone".into()))];
        let mut stream = Some(futures_util::stream::iter(rows).boxed());
        assert!(next_batch(&mut stream, 10).await.is_err());
    }
}
