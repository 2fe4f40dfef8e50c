export const placeholder = 'fs-sim';
