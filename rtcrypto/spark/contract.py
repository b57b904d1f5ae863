"""A record contract of ``rtcrypto.market.schemas`` as Spark types and columns.

The Spark job that writes a record takes its output schema, column order and column types from
the contract (``record_fields``), never from a list of its own: ``spark_schema`` is the contract
as a ``StructType``, ``contract_columns`` orders and types the job's column expressions by it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DoubleType, LongType, StringType, StructField, StructType

from rtcrypto.market.schemas import RecordField, record_fields

SPARK_TYPES: Mapping[type, DataType] = {int: LongType(), float: DoubleType(), str: StringType()}


class ContractError(ValueError):
    """A job's columns do not cover its record contract."""


def spark_type(spec: RecordField) -> DataType:
    """The Spark type of one contract field (int -> long, float -> double, str -> string)."""
    return SPARK_TYPES[spec.kind]


def spark_schema(contract: type) -> StructType:
    """The contract as a Spark schema: its fields in order, nullable where it allows null."""
    return StructType(
        [
            StructField(spec.name, spark_type(spec), nullable=spec.nullable)
            for spec in record_fields(contract)
        ]
    )


def contract_columns(columns: Mapping[str, Column], contract: type) -> list[Column]:
    """``columns`` (name -> expression) in the contract's order, each cast to its field's type.

    A field without an expression is written as its contract default (a field added with a
    default reaches the output before the job computes it); a required field without one, or an
    expression the contract does not know, raises ``ContractError``.
    """
    specs = record_fields(contract)
    unknown = sorted(set(columns) - {spec.name for spec in specs})
    if unknown:
        raise ContractError(f"columns {unknown} are not fields of {contract.__name__}")
    selected = []
    for spec in specs:
        if spec.name in columns:
            column = columns[spec.name]
        elif not spec.required:
            column = F.lit(spec.default)
        else:
            raise ContractError(
                f"{contract.__name__}.{spec.name} has no column expression and no default"
            )
        selected.append(column.cast(spark_type(spec)).alias(spec.name))
    return selected


def field_names(contract: type) -> tuple[str, ...]:
    """The contract's field names in record order."""
    return tuple(spec.name for spec in record_fields(contract))
