"""The single figure and report generator."""
