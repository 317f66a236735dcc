//! What the DynamoDB adapters share: SDK errors as store errors, and creating a table
//! (with its index and TTL) when it is missing, for the local runner and the tests. On AWS
//! the SAM template owns the tables.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::ports::store::StoreError;

/// Any SDK failure, with its context, as an `Unavailable` store error.
pub(crate) fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

/// A table's shape: string keys, keys-only global indexes, and a TTL attribute.
pub(crate) struct TableSpec<'a> {
    pub partition_key: &'a str,
    pub sort_key: Option<&'a str>,
    /// `(index name, partition key, sort key)` of each index.
    pub indexes: &'a [(&'a str, &'a str, &'a str)],
    pub ttl_attribute: Option<&'a str>,
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type set")
}

/// Creates the table on demand when it does not exist, waits until it is active, and
/// enables its TTL.
pub(crate) async fn ensure(
    client: &Client,
    table: &str,
    spec: &TableSpec<'_>,
) -> Result<(), StoreError> {
    let exists = match client.describe_table().table_name(table).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(unavailable(e)),
    };
    if !exists {
        let mut names = vec![spec.partition_key];
        names.extend(spec.sort_key);
        for (_, hash, range) in spec.indexes {
            names.extend([*hash, *range]);
        }
        names.sort_unstable();
        names.dedup();
        let mut create = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest);
        for name in names {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type set"),
            );
        }
        create = create.key_schema(key(spec.partition_key, KeyType::Hash));
        if let Some(sort) = spec.sort_key {
            create = create.key_schema(key(sort, KeyType::Range));
        }
        for (index, hash, range) in spec.indexes {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .key_schema(key(hash, KeyType::Hash))
                    .key_schema(key(range, KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .expect("index fields set"),
            );
        }
        match create.send().await {
            Ok(_) => {}
            // Another process created it in the meantime.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) => {}
            Err(e) => return Err(unavailable(e)),
        }
    }
    wait_until_active(client, table).await?;
    match spec.ttl_attribute {
        Some(attribute) => enable_ttl(client, table, attribute).await,
        None => Ok(()),
    }
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(unavailable)?;
        match out.table().and_then(|t| t.table_status()) {
            Some(TableStatus::Active) | None => return Ok(()),
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    Err(StoreError::Unavailable(format!(
        "table `{table}` did not become active within a minute"
    )))
}

async fn enable_ttl(client: &Client, table: &str, attribute: &str) -> Result<(), StoreError> {
    let described = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(unavailable)?;
    if let Some(d) = described.time_to_live_description()
        && matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        )
        && d.attribute_name() == Some(attribute)
    {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(attribute)
        .build()
        .expect("enabled and attribute name set");
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Enabled in the meantime (DynamoDB refuses to enable it twice).
        Err(e)
            if e.as_service_error().is_some_and(|se| {
                se.message()
                    .is_some_and(|m| m.to_ascii_lowercase().contains("already enabled"))
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}
