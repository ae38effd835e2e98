use super::*;

#[test]
fn listing_times_read_as_utc_seconds() {
    let t = parse_time("2026-11-26T20:15:00.000Z").unwrap();
    assert_eq!(httpdate::fmt_http_date(t), "Thu, 26 Nov 2026 20:15:00 GMT");
    let t = parse_time("2000-02-29T00:00:01Z").unwrap();
    assert_eq!(httpdate::fmt_http_date(t), "Tue, 29 Feb 2000 00:00:01 GMT");
    for bad in [
        "",
        "2026-13-01T00:00:00Z",
        "2026-11-26 20:15:00Z",
        "x026-11-26T20:15:00Z",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

#[test]
fn an_s3_url_names_a_bucket_and_a_prefix_read_as_a_folder() {
    let src = |u: &str| S3Source {
        url: u.into(),
        ..S3Source::default()
    };
    let bp = |u: &str| src(u).bucket_and_prefix();
    assert_eq!(bp("s3://videos"), Ok(("videos".into(), "".into())));
    assert_eq!(bp("s3://videos/"), Ok(("videos".into(), "".into())));
    assert_eq!(
        bp("s3://my.videos/a/b/"),
        Ok(("my.videos".into(), "a/b/".into()))
    );
    for bad in [
        "videos",
        "s3://",
        "s3://ab",
        "s3://Videos",
        "s3://v_x/a",
        "s3://vid/../x",
    ] {
        assert!(bp(bad).is_err(), "{bad}");
    }
}

#[test]
fn what_the_config_leaves_out_comes_from_the_aws_variables() {
    let env = |n: &str| match n {
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9000".to_string()),
        "AWS_REGION" => Some("eu-west-3".to_string()),
        "AWS_ACCESS_KEY_ID" => Some("AK".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("SK".to_string()),
        "AWS_SESSION_TOKEN" => Some("  ".to_string()),
        _ => None,
    };
    let s = S3Source {
        url: "s3://b0b".into(),
        region: Some("us-west-2".into()),
        ..S3Source::default()
    }
    .with_env(env);
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s.region.as_deref(), Some("us-west-2"), "the config's wins");
    assert_eq!(s.access_key_id.as_deref(), Some("AK"));
    assert_eq!(s.secret_access_key.as_deref(), Some("SK"));
    assert_eq!(s.session_token, None, "blank counts as unset");
}
