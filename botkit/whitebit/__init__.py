"""whitebit"""
