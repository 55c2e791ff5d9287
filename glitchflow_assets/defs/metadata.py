"""Markdown for asset metadata: tables and inline PNG images shown in the Dagster UI."""

import base64

import pandas as pd


def md_table(table: pd.DataFrame, floats: str = "{:.3g}") -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |\n|" + "---|" * len(table.columns)
    body = [
        "| " + " | ".join(floats.format(v) if isinstance(v, float) else str(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join([header, *body])


def md_image(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
