"""voxray.eval"""
