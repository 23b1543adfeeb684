"""Card applications: social security (SSSE), bank PAN, read authentication."""
