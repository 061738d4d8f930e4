//! Text from the native API's JSON: what each command prints without
//! `--json`, the same whether the command opened the store itself or the
//! service carried it out (`remote`). With `--json` the JSON is printed as
//! it is (docs/cli.md).
