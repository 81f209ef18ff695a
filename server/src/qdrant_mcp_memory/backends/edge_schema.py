"""A collection's layout in Qdrant Edge's own types, and back: the config a new collection is
made with, the schema of a payload index, and the CollectionSchema that `describe` reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import CollectionSchema, DenseVector, FieldType, NewCollection

if TYPE_CHECKING:
    import qdrant_edge as qe

_INDEX_TYPES = {"keyword": "Keyword", "integer": "Integer", "float": "Float", "boolean": "Bool", "datetime": "Datetime"}
_SCHEMA_NAMES = {
    "Keyword": "keyword",
    "Integer": "integer",
    "Float": "float",
    "Bool": "bool",
    "Text": "text",
    "Datetime": "datetime",
}


def edge_config(spec: NewCollection) -> qe.EdgeConfig:
    import qdrant_edge as qe

    return qe.EdgeConfig(
        vectors={spec.dense.name: qe.EdgeVectorParams(size=spec.dense.size, distance=qe.Distance.Cosine)},
        sparse_vectors={spec.sparse: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)} if spec.sparse else None,
    )


def index_schema(field_type: FieldType, *, tenant: bool) -> qe.PayloadSchemaType | qe.KeywordIndexParams:
    import qdrant_edge as qe

    schema: qe.PayloadSchemaType | qe.KeywordIndexParams = getattr(qe.PayloadSchemaType, _INDEX_TYPES[field_type])
    if tenant:
        schema = qe.KeywordIndexParams(is_tenant=True)
    return schema


def collection_schema(config: dict[str, Any], info: qe.ShardInfo, *, building: bool) -> CollectionSchema:
    """`config` is the shard's edge_config.json; `building`: an index build is under way."""
    dense = tuple(
        DenseVector(name, int(params["size"]), str(params.get("distance", "Cosine")))
        for name, params in config.get("vectors", {}).items()
    )
    indexed = {
        key: _SCHEMA_NAMES.get(_enum_name(v.data_type), _enum_name(v.data_type).lower())
        for key, v in info.payload_schema.items()
    }
    status = "yellow" if building else "green"  # yellow: an index is being built
    return CollectionSchema(dense, tuple(sorted(config.get("sparse_vectors", {}))), info.points_count, indexed, status)


def _enum_name(value: object) -> str:
    return str(value).rsplit(".", 1)[-1]
