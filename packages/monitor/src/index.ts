export const placeholder = 'monitor';
