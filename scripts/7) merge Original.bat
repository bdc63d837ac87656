@echo off
rem 7) merge Original: put the Original face onto every data_dst frame: data_dst/merged and
rem data_dst/merged_mask. Interactive window on a terminal; batch with the default settings otherwise
rem (Original has no mask network: the dst landmark hull is its default mask).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" merge ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\merged" ^
    --output-mask-dir "%WORKSPACE%\data_dst\merged_mask" ^
    --aligned-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model Original ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
