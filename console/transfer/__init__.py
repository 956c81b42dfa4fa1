"""Member import (CSV/XLSX) and exports."""
