"""botkit"""
