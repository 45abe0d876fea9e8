"""The course's machinery: what a student need not open to learn MLflow.

Supervision of every process we start (`processes`), the scenario servers (`servers`), serving
processes (`serving`), the course runner (`course`), the MLflow UI in a browser (`ui`) and load
tests (`loadtest`). The notebooks use the lesson modules one level up; this subpackage runs things
for them.
"""
